"""Security tests: a hostile or broken server, local users, the network."""
