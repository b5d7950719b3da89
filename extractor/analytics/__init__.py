"""Analyses over extracted runs that need no database: pure functions of API fields."""
