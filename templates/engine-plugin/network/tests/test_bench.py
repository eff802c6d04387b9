from engine_testkit.network_bench import NetworkDriverBench


class Test{{class_name}}Bench(NetworkDriverBench):
    driver_name = "{{driver_name}}"
