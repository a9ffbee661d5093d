"""The ground truth, and nothing else: advertisers and their ads, the traffic of queries over the day, the
candidates each query retrieves, and the click model (true CTR = relevance × examination). No model, auction
or measurement lives here; the loop asks the world for queries and clicks.

This file imports nothing: `simulator.config` imports `simulator.world.config` (the world's sections), which runs it."""
