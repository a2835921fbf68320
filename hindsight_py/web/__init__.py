"""The web dashboard of `hsp run`: live plugin health, circular-buffer graphs and plugin deploys.

    collector.py  reads the kernel's state and follows the queues (payloads, recent messages)
    cbuf.py       the circular_buffer text formats (cbuf, cbufd) as plain data
    deploy.py     validate a plugin in a scratch sandbox, then hand it to the load directory
    trial.py      try a plugin / a matcher against the recent messages (the test harness)
    server.py     the aiohttp application: the page, the JSON API, the token rules
"""
