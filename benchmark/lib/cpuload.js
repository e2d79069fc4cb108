'use strict'
// How busy the machine was with *other* work while the benchmark ran: CPU time of the whole
// system (/proc/stat: user + nice + system + irq + softirq) minus this process's and its
// waited-for children's (/proc/self/stat: utime + stime + cutime + cstime; with tick-based
// accounting a task is charged for the softirq work done on its behalf, such as loopback
// delivery). An estimate: loopback figures are only comparable between runs on an otherwise idle
// machine, and this says whether it was.
const fs = require('node:fs')
const os = require('node:os')

const HZ = 100 // USER_HZ, the unit of both files on Linux

function read() {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    const self = fs.readFileSync('/proc/self/stat', 'utf8')
    const fields = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number)
    // fields[0] is field 3 (state); utime..cstime are fields 14..17.
    const own = fields[11] + fields[12] + fields[13] + fields[14]
    return { busy: cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6], steal: cpu[7] || 0, own, t: performance.now() / 1000 }
  } catch {
    return null
  }
}

function cpuMeter() {
  const start = read()
  return {
    stop() {
      const end = read()
      if (!start || !end) return null
      const seconds = end.t - start.t
      const others = Math.max(0, end.busy - start.busy - (end.own - start.own)) / HZ
      return {
        seconds,
        cores: os.cpus().length,
        otherCores: others / seconds,
        stealCores: (end.steal - start.steal) / HZ / seconds,
        ownCores: (end.own - start.own) / HZ / seconds,
      }
    },
  }
}

module.exports = { cpuMeter }
