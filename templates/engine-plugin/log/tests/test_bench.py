from engine_testkit.logs_bench import LogDriverBench


class Test{{class_name}}Bench(LogDriverBench):
    driver_name = "{{driver_name}}"
