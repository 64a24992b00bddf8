"""The mathematics of REINFORCE, without I/O: returns, baselines, policies, the loss and the optimizers."""
