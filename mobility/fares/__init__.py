"""Fares and subsidies: My Number Card identity, IC cards, MyTaku and bus discounts, ledger."""
