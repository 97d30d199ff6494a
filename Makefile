.PHONY: serve test bench
serve:
	scripts/serve
test:
	scripts/test
# spad beside supervisord and the floor: W1-W7, 3 runs each (about 6 minutes), then W8, the
# cost curve from 1 to 1,000 workflows (about 10 minutes; picture in bench/scale.png).
# JSON in bench/results/.
bench:
	scripts/bootstrap --dev
	.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,bench]"
	.venv/bin/python bench/run.py --runs 3
	.venv/bin/python bench/scale.py --sizes 1 10 100 1000
