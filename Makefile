.PHONY: serve test bench
serve:
	scripts/serve
test:
	scripts/test
# spad beside supervisord and the floor, 3 runs each (about 6 minutes); JSON in bench/results/.
bench:
	scripts/bootstrap --dev
	.venv/bin/python bench/run.py --runs 3
