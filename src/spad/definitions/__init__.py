"""The definition tree: names (``names.py``), parsing and validation (``model.py``), and what
create / delete / update / dump do with it (``catalog.py``)."""
