"""The fares and subsidy tables (ledger, residents, cards), applied by ``mebuku db migrate``."""
