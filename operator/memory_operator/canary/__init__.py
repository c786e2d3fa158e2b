"""The recall canary: a scripted scenario written, queried and deleted through a store's own API.

`scenario` loads the versioned scenarios shipped with the project (`scenarios/<version>/facts.json`
and `questions.json`), `probe` runs one against a memory server and measures recall@k and latency,
`main` is the `memory-operator canary` command (the canary CronJob's, the Helm test's, and anyone's
against a local server).
"""
