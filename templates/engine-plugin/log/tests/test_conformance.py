from engine_testkit.logs import LogReaderSuite


class Test{{class_name}}(LogReaderSuite):
    driver_name = "{{driver_name}}"
    rotation_options = {"max-size": "10k", "max-file": "3"}
