"""Kernel sources, installed as package data ``gscache._cuda`` (see gscache/backends/_loader.py)."""
