"""The system layer, above the runtime and the network: what a program asks of its OS.

    pipes      a pipe's end as a byte stream (the stream contract)
    processes  run_process, open_process: children that never outlive their scope
    signals    signals(...): signals delivered to a con thread
"""
