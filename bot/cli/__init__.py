"""The command line: `switchboard run`, `workflow ...`, `approvals ...`, `conversations stats`,
`discord sync`.

Top layer beside process: may import anything below it.
"""
