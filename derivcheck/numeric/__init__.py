"""Finite differences with error estimates, directional checks, localization, Taylor test."""
