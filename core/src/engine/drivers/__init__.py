"""Driver contracts: the abstract base classes every storage, network and log driver implements."""
