"""Onderwijsscore: education-funding indicators from register microdata (Spark + Delta)."""

__version__ = "0.1.0"
