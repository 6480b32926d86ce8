"""The thing measured: a faithful MLX implementation of the seed's code model."""
