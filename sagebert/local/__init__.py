"""The local stack: the real model server and front door on 127.0.0.1, local batch, smoke tests."""
