"""One module per resource; each route: request schema in, one application call, schema out."""
