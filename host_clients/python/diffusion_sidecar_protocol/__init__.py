"""diffusion-sidecar's protocol: every method's params, results and notifications as msgspec Structs.

Its own package (as lsprotocol is to pygls) so that the sidecar and the host clients share the
types: the sidecar depends on it, and a host installs it with the client, without the native
library.
"""
