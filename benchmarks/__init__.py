"""Speed benchmarks: simulator, data loader, policy, world model, RL (`-m benchmarks.<name>`)."""
