.PHONY: serve test
serve:
	scripts/serve
test:
	scripts/test
