from engine_testkit.logs import LogReaderSuite


class Test{{class_name}}(LogReaderSuite):
    driver_name = "{{driver_name}}"
    rotation_options = {"max-size": "20k", "max-file": "5"}  # rotates in this suite, with room for a slow follower
