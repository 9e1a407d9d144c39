"""The front's state: loaded models with their workers and queues (`models`), turns on the compute
device shared by every model (`scheduler`), and what a handler sees of the server (`context`).
Imports `rpc`, `worker` and `backend` only."""
