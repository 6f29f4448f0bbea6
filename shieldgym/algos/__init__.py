"""Safe RL algorithms in the Stable-Baselines3 layout (one package per algorithm)."""
