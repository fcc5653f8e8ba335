"""kafka-python producing one record to `orders` and fetching from it. Usage: kafka_client.py HOST:PORT"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

SERVER = sys.argv[1]
producer = KafkaProducer(bootstrap_servers=SERVER, api_version=(2, 0), client_id="checkout", acks=1)
producer.send("orders", b"order-1").get(timeout=10)
producer.close()
consumer = KafkaConsumer(bootstrap_servers=SERVER, api_version=(2, 0), client_id="billing",
                         enable_auto_commit=False, fetch_max_wait_ms=100)
partition = TopicPartition("orders", 0)
consumer.assign([partition])
consumer.seek(partition, 0)
consumer.poll(timeout_ms=500)
consumer.close()
print("done")
