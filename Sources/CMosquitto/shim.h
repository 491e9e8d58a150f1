#ifndef WARDEN_CMOSQUITTO_SHIM_H
#define WARDEN_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
