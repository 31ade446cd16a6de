"""Pred-to-inter-2 baseline for OCELOT: synthetic data, models, training, inference, the
algorithm container's entry (formats and layouts live in :mod:`evaluation`)."""

__all__: list[str] = []
