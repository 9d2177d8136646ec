"""One module per tab of the app: tokens, sample, train, compare, report."""
