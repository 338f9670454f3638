"""One module per runtime behind the `Backend` contract (see backends.base); imported lazily."""
