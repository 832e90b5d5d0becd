"""`ros2 param set NODE NAME VALUE` without the ros2 CLI (test peer).

VALUE is JSON (2.0, true, "x"). Prints ``RESULT {json}``: whether the node accepted the
set, its reason, and the parameter's value read back afterwards.
"""

from __future__ import annotations

import json
import sys

import rclpy
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient


def call(node, future):
    rclpy.spin_until_future_complete(node, future, timeout_sec=20.0)
    if future.result() is None:
        raise TimeoutError("no answer from the parameter service")
    return future.result()


def main(target: str, name: str, value: str) -> int:
    rclpy.init()
    node = rclpy.create_node("param_set_peer")
    try:
        client = AsyncParameterClient(node, target)
        if not client.wait_for_services(timeout_sec=30.0):
            print(f"no parameter services of {target}", flush=True)
            return 1
        result = call(node, client.set_parameters([Parameter(name, value=json.loads(value))])).results[0]
        after = parameter_value_to_python(call(node, client.get_parameters([name])).values[0])
        print("RESULT " + json.dumps({"successful": result.successful, "reason": result.reason, "after": after}),
              flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
