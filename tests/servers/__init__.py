"""Real servers (tansu Kafka, ...) started by tests on free ports and stopped in teardown."""
