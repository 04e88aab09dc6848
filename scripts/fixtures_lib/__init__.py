"""Helpers of scripts/make-fixtures.py: tiny tokenizers, models, PEFT adapters and their reference outputs."""
