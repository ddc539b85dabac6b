"""The kopf operator: thin handlers over pure manifest builders."""
