#include "CCurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* The libcurl entry points the agent uses, resolved once by load_library. */
static struct {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *handle);
    CURLcode (*easy_perform)(CURL *handle);
    const char *(*easy_strerror)(CURLcode code);
    CURLcode (*easy_setopt)(CURL *handle, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *handle, CURLINFO info, ...);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *line);
    void (*slist_free_all)(struct curl_slist *list);
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_status = -1;
static char load_error[256] = "libcurl was not loaded";

static void *symbol(void *library, const char *name, int *missing) {
    void *address = dlsym(library, name);
    if (address == NULL && *missing == 0) {
        *missing = 1;
        snprintf(load_error, sizeof load_error, "libcurl.so.4 has no '%s'", name);
    }
    return address;
}

static void load_library(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *reason = dlerror();
        snprintf(load_error, sizeof load_error, "HTTPS needs libcurl (Debian: libcurl4): %s",
                 reason != NULL ? reason : "libcurl.so.4 cannot be opened");
        return;
    }
    int missing = 0;
    *(void **)&api.global_init = symbol(library, "curl_global_init", &missing);
    *(void **)&api.easy_init = symbol(library, "curl_easy_init", &missing);
    *(void **)&api.easy_cleanup = symbol(library, "curl_easy_cleanup", &missing);
    *(void **)&api.easy_perform = symbol(library, "curl_easy_perform", &missing);
    *(void **)&api.easy_strerror = symbol(library, "curl_easy_strerror", &missing);
    *(void **)&api.easy_setopt = symbol(library, "curl_easy_setopt", &missing);
    *(void **)&api.easy_getinfo = symbol(library, "curl_easy_getinfo", &missing);
    *(void **)&api.slist_append = symbol(library, "curl_slist_append", &missing);
    *(void **)&api.slist_free_all = symbol(library, "curl_slist_free_all", &missing);
    /* CURLOPT_PROTOCOLS_STR, which the transfers rely on, arrived in 7.85. */
    curl_version_info_data *(*version_info)(CURLversion) = NULL;
    *(void **)&version_info = symbol(library, "curl_version_info", &missing);
    if (missing == 0) {
        const curl_version_info_data *info = version_info(CURLVERSION_NOW);
        if (info == NULL || info->version_num < 0x075500) {
            missing = 1;
            snprintf(load_error, sizeof load_error, "libcurl.so.4 is %s; Warden needs 7.85 or later",
                     info != NULL && info->version != NULL ? info->version : "of unknown version");
        }
    }
    if (missing != 0) {
        memset(&api, 0, sizeof api);
        dlclose(library);
        return;
    }
    load_status = 0;
}

int warden_curl_load(char *error, size_t length) {
    pthread_once(&load_once, load_library);
    if (load_status != 0 && error != NULL && length > 0) {
        snprintf(error, length, "%s", load_error);
    }
    return load_status;
}

CURLcode warden_curl_global_init(void) {
    return api.global_init != NULL ? api.global_init(CURL_GLOBAL_DEFAULT) : CURLE_FAILED_INIT;
}

CURL *warden_curl_easy_init(void) { return api.easy_init != NULL ? api.easy_init() : NULL; }

void warden_curl_easy_cleanup(CURL *handle) {
    if (api.easy_cleanup != NULL && handle != NULL) api.easy_cleanup(handle);
}

CURLcode warden_curl_easy_perform(CURL *handle) {
    return api.easy_perform != NULL ? api.easy_perform(handle) : CURLE_FAILED_INIT;
}

const char *warden_curl_easy_strerror(CURLcode code) {
    return api.easy_strerror != NULL ? api.easy_strerror(code) : load_error;
}

struct curl_slist *warden_curl_slist_append(struct curl_slist *list, const char *line) {
    return api.slist_append != NULL ? api.slist_append(list, line) : NULL;
}

void warden_curl_slist_free_all(struct curl_slist *list) {
    if (api.slist_free_all != NULL && list != NULL) api.slist_free_all(list);
}

#define WARDEN_SETOPT(handle, option, value) \
    (api.easy_setopt != NULL ? api.easy_setopt((handle), (option), (value)) : CURLE_FAILED_INIT)

CURLcode warden_curl_setopt_long(CURL *handle, CURLoption option, long value) { return WARDEN_SETOPT(handle, option, value); }
CURLcode warden_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) { return WARDEN_SETOPT(handle, option, value); }
CURLcode warden_curl_setopt_string(CURL *handle, CURLoption option, const char *value) { return WARDEN_SETOPT(handle, option, value); }
CURLcode warden_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) { return WARDEN_SETOPT(handle, option, value); }
CURLcode warden_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) { return WARDEN_SETOPT(handle, option, value); }

CURLcode warden_curl_setopt_data_callback(CURL *handle, CURLoption option, warden_curl_data_callback callback) {
    return WARDEN_SETOPT(handle, option, callback);
}

CURLcode warden_curl_setopt_progress_callback(CURL *handle, warden_curl_progress_callback callback) {
    return WARDEN_SETOPT(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

CURLcode warden_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return api.easy_getinfo != NULL ? api.easy_getinfo(handle, info, value) : CURLE_FAILED_INIT;
}

CURLcode warden_curl_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return api.easy_getinfo != NULL ? api.easy_getinfo(handle, info, value) : CURLE_FAILED_INIT;
}
