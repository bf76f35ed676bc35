# nginx-mp4.sh — sourced by the bench scripts: the one nginx configuration they compare
# loomiere against (Debian's nginx, its mp4 module with `mp4_start_key_frame on`, sendfile,
# open_file_cache, on 127.0.0.1 only).
# nginx_mp4_conf DIR PORT MEDIA ACCESS_LOG [WORKERS] [DAEMON]: prints the configuration (pid
# file, logs and temp paths under DIR; ACCESS_LOG is a file path or `off`; WORKERS default
# `auto`, DAEMON `on`/`off`, default `off`).
nginx_mp4_conf() {
  local dir=$1 port=$2 media=$3 access=$4 workers=${5:-auto} daemon=${6:-off} user_line=
  [[ $(id -u) == 0 ]] && user_line="user $(id -un) $(id -gn);"
  cat <<CONF
$user_line
worker_processes $workers;
worker_rlimit_nofile 20000;
daemon $daemon;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 20000; }
http {
  access_log $access;
  sendfile on;
  open_file_cache max=1000 inactive=60s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port backlog=4096;
    root $media;
    location ~ \.mp4\$ {
      mp4;
      mp4_buffer_size 1m;
      mp4_max_buffer_size 64m;
      mp4_start_key_frame on;
    }
  }
}
CONF
}
