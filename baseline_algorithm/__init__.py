"""Pred-to-inter-2 baseline for OCELOT: data layer, synthetic data, models, training, inference."""
