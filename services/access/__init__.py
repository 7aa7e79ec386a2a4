"""The access service: entitlements, tap decisions, wallets, payments and the ledger."""
