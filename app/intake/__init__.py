"""The webhook front door: EPM deliveries stored raw, validated and turned into tickets."""
