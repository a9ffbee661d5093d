"""The closed loop on one simpy clock: traffic → scoring → auction → clicks → logs → online training →
deploy. `simulation` the run and its processes, `processes`
the simpy environment and each process's recorded wake-up, `tick` the pure parts of a tick's work, `state` the run's state as
named data, `builders` the model and trainer a scenario describes, `records` the logs it keeps, `checkpoint`
saving and loading that state, `results` a run's output (per-tick metrics, the summary, its files)."""
