"""diffusion-sidecar's protocol: every method's params, results and notifications as msgspec Structs.

Its own package (as lsprotocol is to pygls) so that the sidecar and the host clients share the
types: the sidecar depends on it, and a host installs it with the client, without the native
library.

The one place for version numbers. `__version__` is the version of both distributions (the sidecar
and this client; setuptools reads it from here) and of the frozen binary (which carries no package
metadata). `PROTOCOL_VERSION` is `major.minor`: a minor bump only adds (methods, optional fields,
values), so peers of the same major version work together; `initialize` reports it, and the
clients refuse a sidecar of another major version. The Node package holds the same two literals
(`package.json`'s version, `src/protocol.js`); tests/test_packaging.py checks they agree.
"""

__version__ = "0.2.0"
PROTOCOL_VERSION = "1.1"
