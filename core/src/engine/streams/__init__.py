"""Container stdio on the wire, below the API: stdcopy framing (``stdcopy``) and the raw two-way
connection an attach or exec session writes to (``conn``: the ``Conn`` protocol and the hijacked
socket). No HTTP here: engine.api answers the upgrade and hands a connection down to the services.
"""
