"""Yishi's public contracts: the integration events, commands and replies of every service.

Start at ``contracts/README.md``; ``contracts.registry`` maps type names to models.
"""
