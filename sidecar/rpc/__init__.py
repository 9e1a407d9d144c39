"""The wire: bytes on stdio (stdout guarded for protocol bytes only), JSON-RPC envelopes, error codes.

The lowest layer of the front: it imports nothing else of `sidecar`, and everything may import it.
"""
