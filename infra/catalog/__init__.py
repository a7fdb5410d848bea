"""AWS facts the constructs and reports read, each a typed module beside its dated JSON: DLC images,
compute profiles, prices, measured throughput, SageMaker API limits, region support, Powertools."""
