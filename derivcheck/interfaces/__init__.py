"""How people reach derivcheck: the command line, the pytest plugin, Hypothesis strategies and the
runner of the derivation scripts."""
