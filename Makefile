# Convenience targets; the scripts are the source of truth.
.PHONY: test ci kafka-install kafka-start kafka-stop kafka-status

test:
	bash scripts/test.sh $(ARGS)

ci:
	.ci/run

kafka-install:
	bash scripts/kafka.sh install

kafka-start:
	bash scripts/kafka.sh start

kafka-stop:
	bash scripts/kafka.sh stop

kafka-status:
	bash scripts/kafka.sh status
