from engine_testkit.network import NetworkDriverSuite


class Test{{class_name}}(NetworkDriverSuite):
    driver_name = "{{driver_name}}"
