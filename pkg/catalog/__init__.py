"""What a source's own catalog says about a version before anything is downloaded.

`types` is the contract between the lookups (one per source type, I/O behind `Lookup`) and the
ModelSync's catalog step, which stays pure: it reads a `LookupResult` and never waits on the
network.
"""
