"""The Heka message: model, protobuf codec and stream framing."""

from hindsight_py.message.model import Field, FieldValue, Message, ValueType

__all__ = ["Field", "FieldValue", "Message", "ValueType"]
