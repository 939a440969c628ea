"""Money: the ledger (accounts, postings, flows) that checks conservation after every event."""
