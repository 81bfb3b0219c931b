"""Synthetic register microdata that meets the input contract, generated with Spark.

The generator models secondary education in the Netherlands at any scale (1 = the
whole country): 74 regional samenwerkingsverbanden (SWVs) plus the RSVO, their
postcode regions and vestigingen, yearly cohorts of students moving through the
grades of their track, and one family per student. A latent family socio-economic
status (SES) drives the student's track, both parents' education level and income
percentile and the chance of debt restructuring (WSNP); origin, asylum and big-city
SWVs shift it. Every random draw is a hash of (seed, attribute, entity key), so the
output depends only on config, scale, seed and years, never on partitioning or row
order. All shares and sizes are in conf/sample_data.yaml; docs/sample-data.md
describes the model and what it realises.

- `spec`: what one generation draws (conf/sample_data.yaml, scale, seed, years);
- `draws`: random draws, pure functions of (seed, attribute, keys);
- `geography`: SWVs, postcodes and vestigingen, planned on the driver;
- `families`: students, their tracks, parents, homes and schools;
- `tables`: the contract tables and the entry points (`sample_tables`, `generate`).
"""
